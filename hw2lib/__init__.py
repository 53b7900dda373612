"""hw2lib: the library behind hw2book, an executable companion to Deep Learning Homework 2.

Modules, one per topic (each docstring names the chapter that explains it):

* ``download``, ``kmnist``, ``chardata`` -- data (introduction)
* ``convolution`` -- Question 1 (chapter 1)
* ``cnn``, ``train``, ``runs`` -- Question 2 and the shared training loop (chapter 2)
* ``seq2seq``, ``decoding``, ``metrics``, ``translate`` -- Question 3 (chapter 3)
* ``seeds`` -- the best runs over three seeds (appendix)
* ``plots``, ``widgets`` -- figures and interactive browsers of every chapter
* ``cli`` -- ``python -m hw2lib``; ``sphinx_offline`` -- keeps the built book free of CDN scripts
"""

__version__ = "0.1.0"
