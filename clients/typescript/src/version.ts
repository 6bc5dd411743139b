/** The version of this package and of the chunkscope API it speaks (scripts/version.py keeps it equal to package.json's). */
export const VERSION = "0.2.0";
