#!/usr/bin/env bash
# The PyTorch training DLC's entrypoint (build_artifacts/start_with_right_hostname.sh), adapted
# to an image without gcc and jq.
#
# The DLC compiles changehostname.c with current_host from resourceconfig.json baked in and runs
# `LD_PRELOAD=/libchangehostname.so train`, so gethostname() says algo-N whatever the container's
# real hostname is. sagemaker-training ships the same override already compiled: its
# `gethostname` extension defines gethostname() reading current_host from
# /opt/ml/input/config/resourceconfig.json (the toolkit preloads it itself for smddprun). The
# image links it to /libchangehostname.so at build time. Anything but `train` runs as given.
if [[ "$1" = "train" ]]; then
    LD_PRELOAD=/libchangehostname.so train
else
    eval "$@"
fi
