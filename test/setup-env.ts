/**
 * Every test file starts with this: the agents tests start stay off the network unless a test
 * says otherwise (mDNS off, peer links on loopback only). The community tests, which build their
 * own networks out of namespaces, pass --listen and mDNS explicitly.
 */
process.env.VOS_MDNS = '0';
process.env.VOS_LISTEN = '127.0.0.1:0';
