broken ${
