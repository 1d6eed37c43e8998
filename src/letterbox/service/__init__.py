"""What a protocol session stands on, below the protocols and the server: the session
contract (Peer, Session), the context every session shares, the fair share of the event
loop and the socket options a protocol sets. The server runs sessions; protocols
implement them; neither is imported from here."""
