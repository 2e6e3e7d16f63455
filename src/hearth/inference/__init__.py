"""The neutral model of an inference call, shared by every API family, the gateway and the engines.

Adapters (``hearth.api.<family>``) map their protocol objects to these types and back; nothing
here knows about HTTP or any one API's field names.
"""
