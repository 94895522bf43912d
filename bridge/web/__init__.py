"""HTTP and WebSocket serving (aiohttp): the bounded server every web surface runs on, the control panel and
its access rules. See :mod:`bridge.web.server` for why aiohttp and what the bounds are."""


def attach(engine, settings):
    """The engine builder's hook: the control panel on the preview server."""
    from bridge.web.control import attach as attach_panel

    return attach_panel(engine, settings)
