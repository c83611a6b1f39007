"""Build a V2 request from a 2-D array (given as JSON rows) with MLServer's NumpyRequestCodec, and
print it as MLServer's own REST client would send it."""

import json
import sys

import numpy as np
from mlserver.codecs import NumpyRequestCodec

rows = np.array(json.loads(sys.argv[1]), dtype=np.float32)
print(NumpyRequestCodec.encode_request(rows).model_dump_json(exclude_none=True))
