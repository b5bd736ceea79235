"""Audio Studio inference engines: one package per engine plus the shared audio core."""
