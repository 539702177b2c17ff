"""What every service stands on: data, identity, audit, events, geography, devices, media."""
