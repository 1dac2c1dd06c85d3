"""Loss functions: pure tensor functions, one module per family of equations."""
