"""Photos in the wild (issue #15): per-image appearance, transient masks, user masks, NeRF-W evaluation.

Classical parts only, no pretrained network:

* :mod:`recon.wild.appearance`: an affine colour transform per training image (gsplat's appearance
  optimisation without the embedding network), and its closed-form fit;
* :mod:`recon.wild.robust`: masks of transient objects from per-image residual outliers decided on
  cells (RobustNeRF / SpotLessSplats);
* :mod:`recon.wild.masks`: user masks from a ``masks/`` folder (0 = ignore), checked;
* :mod:`recon.wild.terms`: :class:`WildTerms`, the one hook the trainer calls;
* :mod:`recon.wild.protocol`: the reference appearance and the NeRF-W half-image protocol.
"""

from recon.wild.terms import WildTerms, make_wild_terms, wild_enabled

__all__ = ["WildTerms", "make_wild_terms", "wild_enabled"]
