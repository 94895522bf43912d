"""SpoutGL.enums: the four OpenGL pixel formats SpoutGL 0.1.1 re-exports (values from GL/gl.h)."""
GL_RGBA = 0x1908
GL_BGRA_EXT = 0x80E1
GL_RGB = 0x1907
GL_BGR_EXT = 0x80E0
