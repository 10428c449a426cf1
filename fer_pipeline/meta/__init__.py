"""Face2Exp meta-training: a teacher (base network B) and a student (adaptation
network A) connected by pseudo labels (B -> A) and circuit feedback (A -> B)."""
