"""The local stack: the whole service on one machine, with API Gateway semantics.

``python -m local`` renders the contracts of ``runtime`` (route table, tables, settings) into a
local emulation: an embedded moto server, the handlers run in-process like Lambda, and a
WebSocket gateway. See docs/local.md.
"""
