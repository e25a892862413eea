"""Regularisers for LPAM: classical total variation and the learned CNN feature map."""
