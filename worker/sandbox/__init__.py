"""Local stand-ins for the services we talk to, served over real HTTP.

Each module impersonates one service closely enough for the tests and the demo
(``salla``: Salla's Merchant API and token endpoint; ``capture``: a merchant's
webhook receiver); ``server.serve_in_thread`` runs any of them on 127.0.0.1.
None of this is imported by the production code paths.
"""
