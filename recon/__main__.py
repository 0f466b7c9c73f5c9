from recon.cli import entrypoint

entrypoint()
