"""hw2lib: the library behind hw2book, an executable companion to Deep Learning Homework 2.

One job per module; imports only point down the layers (utilities < data < models < experiments <
plots/widgets < cli), which ``tests/test_architecture.py`` checks.

Utilities
  ``utils`` -- devices, evaluation mode, parameter counts, atomic files, safe weight loading;
  ``optim`` -- ``LeanFusedAdam``, torch's fused Adam with less Python per step;
  ``train`` -- the one training loop and its checkpoints;
  ``runs`` -- the results store (the only owner of a run folder's file names);
  ``metrics`` -- error rate, BLEU, chrF, exact match.
Data (the introduction)
  ``download`` -- checksummed downloads and the mirror; ``kmnist`` -- Kuzushiji-MNIST;
  ``chardata`` -- the Spanish-English character data.
Models
  ``convolution`` -- chapter 1: convolutions as matrices, parameter counts, self-attention;
  ``cnn`` -- chapter 2: the CNN, its baseline and their analysis;
  ``seq2seq`` -- chapter 3: the translator; ``decoding`` -- greedy and beam search, scoring.
Experiments
  ``cnn_runs`` -- chapter 2's stored runs; ``seq2seq_runs`` -- chapter 3's stored runs;
  ``translate`` -- translating any Spanish text; ``seed_runs`` -- the appendix's seed study;
  ``exercises`` -- checkers for a student's own code in every chapter's exercises (import them from here);
  ``exercise_checks`` -- what every checker shares: the result, the hints of the usual mistakes;
  ``exercises_ch1`` -- chapter 1's checkers (Q1.1 (a)-(c), Q1.2);
  ``exercises_ch2`` -- chapter 2's checkers (the CNN, Q2.1 and Q2.4);
  ``exercises_ch3`` -- chapter 3's checkers (greedy decoding, bilinear attention, beam search);
  ``web_export`` -- the stored models' weights for the book's live JavaScript panels;
  ``notebook_status`` -- the "where you are" cell that opens every chapter notebook.
Figures and interaction
  ``plots`` -- every figure and table of the book (import them from here);
  ``plot_style`` -- the book's look, shared by every figure, and the Markdown tables;
  ``plots_ch1`` -- chapter 1's figures: convolution matrices, heatmaps, parameter counts;
  ``plots_ch2`` -- chapter 2's figures: images, learning curves, filters, feature maps, errors;
  ``plots_ch3`` -- chapter 3's figures: attention heatmaps, the decoders compared;
  ``plots_appendix`` -- the appendix's figure: the spread of the seed study;
  ``widgets`` -- the notebooks' ipywidgets.
Command line
  ``cli`` -- ``python -m hw2lib``: every experiment as a subcommand.
"""

__version__ = "0.1.0"
