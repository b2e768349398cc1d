"""An encoder-decoder Transformer built on minigrad."""
