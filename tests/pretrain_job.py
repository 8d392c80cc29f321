"""Run one pretraining job in its own process (for the kill/resume tests): argv = settings.json out shards."""
import json
import sys

import torch

from ecgfm.pretrain import pretrain

torch.set_num_threads(1)
settings = json.loads(open(sys.argv[1]).read())
pretrain(settings, [sys.argv[3]], sys.argv[2], progress=False)
