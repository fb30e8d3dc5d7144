"""The measuring process: the engine, the power sampler and the session writer in a process
of their own, so the window that shows them can't slow what they measure."""
