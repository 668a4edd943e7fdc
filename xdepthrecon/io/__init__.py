"""Reading and standardising data: cubes, SST, profiles, bundled samples."""
