"""Dataset layouts that `lpam prepare` reads: one module per layout (brats, bids, ixi, h5, mat, npz), each a
:class:`lpam.data.layouts.base.DatasetLayout`, registered in :data:`lpam.data.layouts.registry.LAYOUTS`."""
