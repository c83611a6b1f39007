"""Build a V2 request from a DataFrame (given as JSON records) with MLServer's PandasCodec,
and print it as MLServer's own REST client would send it."""

import json
import sys

import pandas as pd
from mlserver.codecs import PandasCodec

frame = pd.DataFrame(json.loads(sys.argv[1]))
request = PandasCodec.encode_request(frame)
print(request.model_dump_json(exclude_none=True))
