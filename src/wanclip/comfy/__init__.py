"""The ComfyUI protocol only: HTTP + websocket client, typed events, following a prompt."""
