"""The client side: real clients that prove what the lab promises.

    mqtt    MQTT clients (paho) and their outcomes    tls     TLS contexts, handshakes, errors in words
    checks  the verification matrix (`verify`)        rows    one function per row of the matrix
    subpub  `invoke sub` / `invoke pub`: the guide's paho command lines
    browser the browser route's page server
"""
