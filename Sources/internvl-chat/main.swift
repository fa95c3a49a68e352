print("internvl-chat")
