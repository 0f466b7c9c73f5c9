"""Diffusion repair of novel views (see recon/repair/__init__.py once written)."""
