"""MRI physics: Fourier operators and sampling masks. Knows nothing of networks or of the solver."""
