"""Building blocks of the NeoNet networks; import them from :mod:`neonet_ext.networks`."""
