"""Solutions to the notebooks' exercises, one module per notebook; ``exercises.py`` checks them."""
