"""DAW integration: the Reaper actions, the Max for Live device, and their installer."""
