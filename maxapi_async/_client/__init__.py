"""The client: the session core (:mod:`.core`), ``AsyncMaxAPI`` (:mod:`.client`), its resources
(:mod:`.resources`), the result readers (:mod:`.results`), task handles (:mod:`.handles`), a
call's deadline and the poll budget (:mod:`.limits`) and instrumentation hooks (:mod:`.hooks`).

It sits on the protocol and the transport; it imports nothing from batch or the command line.
"""
