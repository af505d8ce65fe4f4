"""Home of the paper analyses (``latbench[analysis]``): cross-device correlation
(Table S4), FLOPs/params scatter plots (Figure S12) and the layer-wise versus GCN
latency predictor comparison (Tables 1 and S2). Not implemented yet; the inputs they
need (``latbench.load_wide``, ``latbench.network.layer_counts``, per-layer tables from
``latbench-measure --layers`` and ``PrunedGraph.gcn_encoding``) are in place.
"""
