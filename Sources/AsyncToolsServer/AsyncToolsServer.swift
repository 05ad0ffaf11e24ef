// The async server launcher: see issue "The async server launcher".
