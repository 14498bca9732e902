"""The lab's certificates: the toy CA, the server and client certificates, and everything that reads them.

    paths    where each file of the set lives (the guide's names)
    build    the certificate profiles and the `cryptography` builders
    disk     reading and writing the set's files, and what was done to each
    ca       the lab CA: made once, reused byte for byte, its passphrase
    leaves   server and client certificates: issued, reused while good, re-issued when not
    info     what a certificate says (`openssl x509 -text` as data)
    lint     the set against Amlen's rules, before anything is uploaded
    crl      the workshop's revocation list, signed by the CA that signed the seats
    trust    the lab CA in the browsers' NSS databases

Import from the module that holds a name (`from lab.pki.leaves import ensure_certificates`): this package
imports nothing itself, so reading a path does not load the builders.
"""
