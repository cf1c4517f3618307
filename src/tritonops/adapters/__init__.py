"""Each adapter talks to one outside thing and translates its errors into ours."""
