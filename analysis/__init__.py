"""Reading experiment folders into the paper's tables and figures (no Ray imports).

- :mod:`analysis.experiment`: load an experiment folder (summary CSVs, manifest, planned runs)
- :mod:`analysis.tables`: Tables 1-6 (mean ± std over seeds, bold, 5% star, missing seeds)
- :mod:`analysis.figures`: Fig. 3-6, the search view, the motivation bar charts
- :mod:`analysis.noise_detection`: noise-detection tables (ROC-AUC, precision at noise rate)
- :mod:`analysis.exports`: per-example score exports from seed-run checkpoints
- :mod:`analysis.checkpoints`: rebuild a trained trainer from its checkpoint
- :mod:`analysis.report`: the whole report (``python -m deca_tune.report``)
- :mod:`analysis.motivation`: the motivation study (``python -m deca_tune.motivation``)
"""
