"""The Gradio studio: layout, callbacks and plots only (engines do the tensor work)."""
