"""``doge serve``: the gap library in a browser (``pip install 'doge[serve]'``); see :mod:`doge.serve.app`."""
