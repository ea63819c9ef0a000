"""The tray icon: a pure menu model, the icon's drawing, and the pystray adapter."""
