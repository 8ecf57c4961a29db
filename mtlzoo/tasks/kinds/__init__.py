"""The shipped task kinds, one module per kind or family; importing this package registers them."""

from mtlzoo.tasks.kinds import depth, edge, image_level, keypoints, multilabel, normals, saliency, segmentation

__all__ = ["depth", "edge", "image_level", "keypoints", "multilabel", "normals", "saliency", "segmentation"]
