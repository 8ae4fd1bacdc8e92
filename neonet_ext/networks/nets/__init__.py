"""NeoNet classifiers (PattenNet and the seed study's baselines) and NeoGen's autoencoder, diffusion UNet and ControlNet; import them from
:mod:`neonet_ext.networks`."""
