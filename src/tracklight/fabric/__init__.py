"""Lightning Fabric's namespace: ``from tracklight.fabric.loggers import CSVLogger, TensorBoardLogger``.

For a Fabric script that imports ``lightning.fabric.loggers``: same names, same arguments, same files.
"""
