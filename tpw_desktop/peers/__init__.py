"""The boundary with what tpw doesn't control: servers, Prometheus, URLs typed by a user.

Everything that arrives from a peer is parsed here into typed values (or a
one-line error naming the peer and the problem); nothing above this package
sees raw JSON, a URL's password or a control character from a peer.
"""
