"""Chapter 05: networking: a bridge, a veth pair per container, NAT, published ports, DNS files."""
