"""Label values of the NeoSeg label map: the one place they are defined."""

BACKGROUND = 0
LIVER = 1
TUMOUR = 2

LABEL_NAMES = {BACKGROUND: "background", LIVER: "liver", TUMOUR: "tumour"}
