#!/usr/bin/env bash
# The command line in four steps: what is usable here, the gradients, a training run, a 2-D run.
set -euo pipefail
anybackprop info
anybackprop gradcheck
anybackprop train --save digits.npz --plot digits_curves.png
anybackprop train --dataset moons --hidden 16 --activation tanh --epochs 100 --plot moons.png
