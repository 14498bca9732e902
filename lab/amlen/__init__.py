"""The Amlen side: what the lab says to Amlen and how it reads Amlen's answers.

    admin      the admin REST client (`AmlenClient`) and Amlen's error codes, with hints
    configure  the guide's objects as data, converged and confirmed live
    waits      waiting for Amlen to be ready
    logs       what Amlen's own log files say about an endpoint, in words

The admin plane's security (how the lab reaches the admin API, and its files) lives here too.
"""
