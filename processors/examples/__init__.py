"""Example processors written on top of the framework's public pieces, runnable with ``ana run --processor``.

``processors.examples.dilepton:DileptonTtbar`` — dilepton ttbar on (synthetic) NanoAOD with a lepton
scale-factor weight variation and a jet-energy-scale shape variation (used by ``notebooks/own_analysis.md``,
the CLI tests and the README section "Your own processor").
"""
