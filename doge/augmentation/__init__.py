"""``doge augment``: a labelled training set in, a bigger one in the target domain out."""
