"""Recommendation methods (``REC_METHODS``): normal, deca (+ ablations), deca_p (+ ablations),
tce, rce, wbpr, ensemble; the interface is :class:`deca_tune.methods.rec.base.RecMethod`."""
