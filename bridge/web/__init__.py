"""HTTP and WebSocket serving (aiohttp): the bounded server every web surface runs on, the control panel and
its access rules. See :mod:`bridge.web.server` for why aiohttp and what the bounds are."""
