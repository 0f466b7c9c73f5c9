"""Config-driven benchmark runs (``recon bench``): a matrix of scenes x primitives x settings x
seeds, each cell an ordinary run folder, with reports over seeds.

- :mod:`recon.bench.matrix`: the matrix file, strict loading, cells and their stable ids;
- :mod:`recon.bench.executors`: one cell's job (:func:`~recon.bench.executors.run_cell`), its
  state on disk (done / resume / new) and the executors that run jobs (local process pool);
- :mod:`recon.bench.ray_executor`: ``--executor ray``, one Ray task per cell (``recon[cluster]``);
- :mod:`recon.bench.report` and :mod:`recon.bench.html`: ``results.jsonl``, ``report.md`` and
  ``report.html`` (mean +- sample std over seeds, ranking, image grids, training curves);
- :mod:`recon.bench.compare`: ``recon bench compare A B``;
- :mod:`recon.bench.manifests`: the split manifests of the standard benchmarks (``datasets/splits``);
- :mod:`recon.bench.cli`: ``recon bench MATRIX``.
"""
