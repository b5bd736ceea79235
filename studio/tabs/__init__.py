"""One module per studio tab: TITLE and build(ctx)."""
